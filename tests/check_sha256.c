/* check_sha256.c - lib/sha256 against the FIPS 180-2/180-4 example vectors
 * (NIST CSRC "SHA256.pdf", "SHA2_Additional.pdf") and, for the padding
 * boundaries, digests computed by GNU coreutils sha256sum. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/sha256.h"
#include "tests/testutil.h"

static void hex_of(const void *data, size_t len, char hex[65])
{
    uint8_t d[32];
    ptq_sha256(data, len, d);
    ptq_sha256_hex(d, hex);
}

START_TEST(nist_vectors)
{
    static const struct {
        const char *msg, *hex;
    } v[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", /* 448 bits */
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrl"
         "mnopqrsmnopqrstnopqrstu", /* 896 bits */
         "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
    };
    char hex[65];
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        hex_of(v[i].msg, strlen(v[i].msg), hex);
        ck_assert_msg(!strcmp(hex, v[i].hex), "vector %zu: got %s want %s", i, hex, v[i].hex);
    }
}
END_TEST

/* The SHA-extension path (where the CPU has it) and the portable loop: the
 * same digest for every length 0..300 and a megabyte in odd updates. */
START_TEST(extensions_match_portable)
{
    enum { N = 1 << 20 };
    uint8_t *m = malloc(N);
    ck_assert_ptr_nonnull(m);
    uint64_t r = 3;
    for (size_t i = 0; i < N; i++) r = r * 6364136223846793005ull + 1442695040888963407ull, m[i] = (uint8_t)(r >> 56);
    for (size_t n = 0; n <= N; n = n < 300 ? n + 1 : N) {
        uint8_t a[32], b[32];
        ptq_sha256_ctx s, t;
        ptq_sha256_init(&s);
        ptq_sha256_init(&t);
        t.portable = 1;
        for (size_t o = 0; o < n; o += 1000 + 7) {
            size_t k = n - o < 1007 ? n - o : 1007;
            ptq_sha256_update(&s, m + o, k);
            ptq_sha256_update(&t, m + o, k);
        }
        ptq_sha256_final(&s, a);
        ptq_sha256_final(&t, b);
        ck_assert_msg(!memcmp(a, b, 32), "length %zu", n);
        if (n == N) break;
    }
    free(m);
}
END_TEST

START_TEST(million_a)
{
    size_t n = 1000000;
    char *a = malloc(n);
    ck_assert_ptr_nonnull(a);
    memset(a, 'a', n);
    char hex[65];
    hex_of(a, n, hex);
    ck_assert_str_eq(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    /* the same million in 1000 updates of 1000 bytes (NIST's usual form) */
    ptq_sha256_ctx s;
    uint8_t d[32];
    ptq_sha256_init(&s);
    for (int i = 0; i < 1000; i++) ptq_sha256_update(&s, a, 1000);
    ptq_sha256_final(&s, d);
    ptq_sha256_hex(d, hex);
    ck_assert_str_eq(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    free(a);
}
END_TEST

/* Messages of 'a' * n around the padding boundaries (55/56 bytes: the length
 * still fits / no longer fits in the last block). Digests from sha256sum. */
START_TEST(padding_boundaries)
{
    static const struct {
        size_t n;
        const char *hex;
    } v[] = {
        {55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
        {56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"},
        {63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34"},
        {64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"},
        {65, "635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0"},
        {119, "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb"},
        {120, "2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c"},
    };
    char a[128], hex[65];
    memset(a, 'a', sizeof a);
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        hex_of(a, v[i].n, hex);
        ck_assert_msg(!strcmp(hex, v[i].hex), "n=%zu: got %s want %s", v[i].n, hex, v[i].hex);
    }
}
END_TEST

/* Incremental updates with odd chunk sizes (including 0) give the one-shot
 * digest, for every message length from 0 to 300 bytes. */
START_TEST(incremental_equals_oneshot)
{
    uint8_t msg[300];
    for (size_t i = 0; i < sizeof msg; i++) msg[i] = (uint8_t)(i * 131 + 7);
    static const size_t chunks[] = {1, 3, 7, 13, 0, 63, 64, 65, 127, 2};
    for (size_t len = 0; len <= sizeof msg; len++) {
        uint8_t one[32], inc[32];
        ptq_sha256(msg, len, one);
        ptq_sha256_ctx s;
        ptq_sha256_init(&s);
        size_t off = 0, k = 0;
        while (off < len) {
            size_t c = chunks[k++ % (sizeof chunks / sizeof chunks[0])];
            if (c > len - off) c = len - off;
            ptq_sha256_update(&s, msg + off, c);
            off += c;
        }
        ptq_sha256_final(&s, inc);
        ck_assert_msg(!memcmp(one, inc, 32), "length %zu: incremental differs", len);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sha256");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, nist_vectors);
    tcase_add_test(tc, million_a);
    tcase_add_test(tc, extensions_match_portable);
    tcase_add_test(tc, padding_boundaries);
    tcase_add_test(tc, incremental_equals_oneshot);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
