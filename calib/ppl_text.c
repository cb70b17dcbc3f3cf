/* ppl_text.c - see ppl_text.h. */
#include "calib/ppl_text.h"

#include <stdlib.h>
#include <string.h>

static int is_space(unsigned char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f';
}

int ptq_ppl_join(const ptq_text *t, const char *what, char **all, size_t *len, ptq_err *e)
{
    *all = NULL;
    *len = 0;
    if (t->total_bytes == 0) return ptq_fail(e, PTQ_EDATA, "%s: text is empty", what);
    char *s = malloc(t->total_bytes + 1);
    if (!s) return ptq_fail(e, PTQ_ENOMEM, "out of memory");
    size_t n = 0;
    for (int i = 0; i < t->ndocs; i++) {
        memcpy(s + n, t->docs[i].text, t->docs[i].len);
        n += t->docs[i].len;
    }
    s[n] = 0;
    size_t i = 0;
    while (i < n && is_space((unsigned char)s[i])) i++;
    int rc = PTQ_OK;
    if (n == 0) rc = ptq_fail(e, PTQ_EDATA, "%s: text is empty", what);
    else if (i == n) rc = ptq_fail(e, PTQ_EDATA, "%s: contains only whitespace", what);
    *all = s; /* the caller frees it also on failure */
    *len = n;
    return rc;
}

int ptq_ppl_encode(const ptq_tokenizer *tok, int cfg_bos, const char *text, size_t len,
                   const char *what, int32_t **ids, size_t *n, int *bos_out, ptq_err *e)
{
    int32_t *body = NULL;
    size_t nb = 0;
    int rc = ptq_tok_encode(tok, text, len, 0, &body, &nb, e);
    if (rc) return ptq_fail_prefix(e, "%s: tokenizing the text", what);
    int bos = ptq_tok_bos(tok);
    if (bos < 0) bos = cfg_bos;
    *ids = malloc(sizeof(int32_t) * (nb + 1));
    if (!*ids) {
        free(body);
        return ptq_fail(e, PTQ_ENOMEM, "out of memory");
    }
    size_t k = 0;
    if (bos >= 0) (*ids)[k++] = bos;
    if (nb) memcpy(*ids + k, body, sizeof(int32_t) * nb);
    *n = k + nb;
    *bos_out = bos;
    free(body);
    return PTQ_OK;
}

size_t ptq_ids_first_diff(const int32_t *a, size_t na, const int32_t *b, size_t nb)
{
    size_t k = 0;
    while (k < na && k < nb && a[k] == b[k]) k++;
    return k;
}
