/* logits.c - see logits.h. */
#include "lib/runtime/logits.h"

double ptq_logit_margin(const float *l, int n)
{
    float a = l[0], b = -3.4e38f;
    for (int i = 1; i < n; i++) {
        if (l[i] > a) b = a, a = l[i];
        else if (l[i] > b) b = l[i];
    }
    return n > 1 ? (double)a - (double)b : 0.0;
}
