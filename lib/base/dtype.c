/* dtype.c - see dtype.h */
#include "lib/base/dtype.h"

#include <string.h>

static const struct { ptq_dtype t; const char *name; size_t size; } dtypes[] = {
    {PTQ_DT_F32, "F32", 4}, {PTQ_DT_F16, "F16", 2},  {PTQ_DT_BF16, "BF16", 2},
    {PTQ_DT_I8, "I8", 1},   {PTQ_DT_U8, "U8", 1},    {PTQ_DT_I32, "I32", 4},
    {PTQ_DT_F8_E4M3, "F8_E4M3", 1}, {PTQ_DT_I64, "I64", 8},
};

size_t ptq_dtype_size(ptq_dtype t)
{
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (dtypes[i].t == t) return dtypes[i].size;
    return 0;
}

const char *ptq_dtype_name(ptq_dtype t)
{
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (dtypes[i].t == t) return dtypes[i].name;
    return "INVALID";
}

ptq_dtype ptq_dtype_parse(const char *s)
{
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (strcmp(dtypes[i].name, s) == 0) return dtypes[i].t;
    return PTQ_DT_INVALID;
}
