/* logits.h - what the decode loops read off a step's logits besides the
 * sampled token. */
#ifndef PTQC_LOGITS_H
#define PTQC_LOGITS_H

/* Largest minus second largest of l [n], in double (0 when n < 2); the
 * closeness of the greedy choice, printed by `ptqc run --print-ids`. */
double ptq_logit_margin(const float *l, int n);

#endif
