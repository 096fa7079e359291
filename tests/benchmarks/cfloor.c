/*
 * The C floor of the replay benchmark: the same L3 operation stream applied by the
 * plainest fast book we could write in C, to show how far any book is from the floor.
 *
 * - orders: fixed arrays (struct of order records, a free list), sized from the stream;
 * - ids: open addressing (linear probing, backward-shift deletion) from id to order;
 * - levels: per side, a sorted array of level records (best level at the end, so the
 *   busy top of the book moves little memory), each with a FIFO list of its orders.
 *
 * Usage: cfloor OPS_FILE REPEATS MIN_SECONDS [CAPACITY]
 * OPS_FILE: 8 bytes "TPOPS01\0", a little-endian uint64 count, then `count` packed
 * 26-byte records (op u8, side u8, id u64, price i64, qty i64) as numpy writes
 * tickplane.engine.book.MD_OP_DTYPE. Ops: 1 add, 2 reduce, 3 delete, 4 execute; an order
 * reduced or executed to zero leaves the book. Side 0 buy, 1 sell.
 * CAPACITY: the most orders live at once (the harness knows it from the stream); the
 * order pool, level arrays and id table are sized from it (the id table at twice it,
 * rounded up to a power of two), as a hand-written book would be. Default: the number
 * of adds. An add beyond it is an error.
 *
 * One pass over the stream takes milliseconds, too short to time alone, so a sample is
 * as many passes as it takes to reach MIN_SECONDS (each on a reset book; the resets are
 * not timed). One untimed warm-up sample, then REPEATS samples; prints one JSON object:
 * the median ops/s over the samples, every sample's ops/s and passes, and the final top
 * 10 levels per side, so the harness can check the book it built.
  */
#define _POSIX_C_SOURCE 199309L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct { uint8_t op, side; uint64_t id; int64_t price, qty; } Op;
typedef struct { uint64_t id; int64_t price, qty; uint32_t prev, next; uint8_t side; } Order;
typedef struct { int64_t price, total; uint32_t count, head, tail; } Level;
typedef struct { uint64_t key; uint32_t val; } Slot;
typedef struct { Level *lv; uint32_t n; int side; } Side;

#define NIL UINT32_MAX

static Order *orders;
static uint32_t *free_list, n_free, n_used, order_cap;
static Slot *slots;
static uint64_t mask;
static Side sides[2];

static inline uint64_t hash64(uint64_t k) {
    k ^= k >> 33; k *= 0xff51afd7ed558ccdULL; k ^= k >> 33;
    return k;
}

static inline uint32_t id_get(uint64_t key) {
    for (uint64_t i = hash64(key) & mask;; i = (i + 1) & mask) {
        if (slots[i].key == key) return slots[i].val;
        if (slots[i].key == 0) return NIL;
    }
}

static inline void id_put(uint64_t key, uint32_t val) {
    uint64_t i = hash64(key) & mask;
    while (slots[i].key != 0) i = (i + 1) & mask;
    slots[i].key = key; slots[i].val = val;
}

static inline void id_del(uint64_t key) {
    uint64_t i = hash64(key) & mask;
    while (slots[i].key != key) i = (i + 1) & mask;
    for (uint64_t j = (i + 1) & mask; slots[j].key != 0; j = (j + 1) & mask) {
        uint64_t home = hash64(slots[j].key) & mask;
        /* move j back into the hole at i unless its home lies cyclically in (i, j] */
        if (((j - home) & mask) >= ((j - i) & mask)) { slots[i] = slots[j]; i = j; }
    }
    slots[i].key = 0;
}

/* Bids ascend toward the best (the end), asks descend toward it. Returns the index of
 * `price` or, if absent, -(insertion point) - 1. */
static inline int64_t level_find(const Side *s, int64_t price) {
    int64_t lo = 0, hi = (int64_t)s->n - 1;
    int asc = s->side == 0;
    /* most operations are near the best: check the end first */
    if (hi >= 0 && s->lv[hi].price == price) return hi;
    while (lo <= hi) {
        int64_t mid = (lo + hi) >> 1;
        int64_t p = s->lv[mid].price;
        if (p == price) return mid;
        if ((p < price) == asc) lo = mid + 1; else hi = mid - 1;
    }
    return -lo - 1;
}

static int overflow;

static void add(uint64_t id, int side, int64_t price, int64_t qty) {
    Side *s = &sides[side];
    int64_t at = level_find(s, price);
    Level *lv;
    if (!n_free && n_used == order_cap) { overflow = 1; return; }
    uint32_t oi = n_free ? free_list[--n_free] : n_used++;
    if (at < 0) {
        at = -at - 1;
        memmove(&s->lv[at + 1], &s->lv[at], (s->n - (uint32_t)at) * sizeof(Level));
        s->n++;
        lv = &s->lv[at];
        lv->price = price; lv->total = 0; lv->count = 0; lv->head = lv->tail = NIL;
    } else {
        lv = &s->lv[at];
    }
    Order *o = &orders[oi];
    o->id = id; o->price = price; o->qty = qty; o->side = (uint8_t)side;
    o->next = NIL; o->prev = lv->tail;
    if (lv->tail != NIL) orders[lv->tail].next = oi; else lv->head = oi;
    lv->tail = oi;
    lv->total += qty; lv->count++;
    id_put(id, oi);
}

static void unlink_order(uint32_t oi) {
    Order *o = &orders[oi];
    Side *s = &sides[o->side];
    int64_t at = level_find(s, o->price);
    Level *lv = &s->lv[at];
    lv->total -= o->qty;
    if (o->prev != NIL) orders[o->prev].next = o->next; else lv->head = o->next;
    if (o->next != NIL) orders[o->next].prev = o->prev; else lv->tail = o->prev;
    if (--lv->count == 0) {
        memmove(&s->lv[at], &s->lv[at + 1], (s->n - (uint32_t)at - 1) * sizeof(Level));
        s->n--;
    }
    id_del(o->id);
    free_list[n_free++] = oi;
}

static void reduce(uint64_t id, int64_t qty) {
    uint32_t oi = id_get(id);
    if (oi == NIL) return;
    Order *o = &orders[oi];
    if (qty >= o->qty) { unlink_order(oi); return; }
    o->qty -= qty;
    Side *s = &sides[o->side];
    s->lv[level_find(s, o->price)].total -= qty;
}

static void del(uint64_t id) {
    uint32_t oi = id_get(id);
    if (oi != NIL) unlink_order(oi);
}

static void reset(void) {
    memset(slots, 0, (mask + 1) * sizeof(Slot));
    n_free = 0; n_used = 0;
    sides[0].n = 0; sides[1].n = 0;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void print_side(const char *name, const Side *s) {
    printf("\"%s\": [", name);
    for (uint32_t k = 0; k < 10 && k < s->n; k++) {
        const Level *lv = &s->lv[s->n - 1 - k];
        printf("%s[%lld, %lld, %u]", k ? ", " : "", (long long)lv->price,
               (long long)lv->total, lv->count);
    }
    printf("]");
}

static double run_pass(const Op *ops, uint64_t n) {
    reset();
    double t0 = now();
    for (uint64_t i = 0; i < n; i++) {
        const Op *op = &ops[i];
        switch (op->op) {
        case 1: add(op->id, op->side, op->price, op->qty); break;
        case 2: case 4: reduce(op->id, op->qty); break;
        default: del(op->id); break;
        }
    }
    return now() - t0;
}

int main(int argc, char **argv) {
    if (argc != 4 && argc != 5) {
        fprintf(stderr, "usage: %s OPS_FILE REPEATS MIN_SECONDS [CAPACITY]\n", argv[0]);
        return 2;
    }
    int repeats = atoi(argv[2]);
    if (repeats < 1) repeats = 1;
    double min_seconds = atof(argv[3]);
    FILE *f = fopen(argv[1], "rb");
    if (!f) { perror(argv[1]); return 1; }
    char magic[8];
    uint64_t n;
    if (fread(magic, 1, 8, f) != 8 || memcmp(magic, "TPOPS01", 8) != 0 ||
        fread(&n, 8, 1, f) != 1) {
        fprintf(stderr, "%s: not an ops file\n", argv[1]);
        return 1;
    }
    Op *ops = malloc((n ? n : 1) * sizeof(Op));
    unsigned char rec[26];
    uint64_t adds = 0;
    for (uint64_t i = 0; i < n; i++) {
        if (fread(rec, 1, 26, f) != 26) { fprintf(stderr, "%s: truncated\n", argv[1]); return 1; }
        ops[i].op = rec[0]; ops[i].side = rec[1];
        memcpy(&ops[i].id, rec + 2, 8);
        memcpy(&ops[i].price, rec + 10, 8);
        memcpy(&ops[i].qty, rec + 18, 8);
        if (ops[i].id == 0 || ops[i].side > 1 || ops[i].op < 1 || ops[i].op > 4) {
            fprintf(stderr, "%s: record %llu is invalid\n", argv[1], (unsigned long long)i);
            return 1;
        }
        adds += ops[i].op == 1;
    }
    fclose(f);

    uint64_t capacity = argc == 5 ? strtoull(argv[4], NULL, 10) : adds;
    if (capacity > adds) capacity = adds;
    order_cap = (uint32_t)capacity + 1;
    orders = malloc(order_cap * sizeof(Order));
    free_list = malloc(order_cap * sizeof(uint32_t));
    uint64_t cap = 16;
    while (cap < 2 * (uint64_t)order_cap) cap <<= 1;
    mask = cap - 1;
    slots = malloc(cap * sizeof(Slot));
    for (int k = 0; k < 2; k++) {
        sides[k].lv = malloc(order_cap * sizeof(Level));
        sides[k].side = k;
    }
    double *rates = malloc((size_t)repeats * sizeof(double));
    long *passes = malloc((size_t)repeats * sizeof(long));
    for (int r = -1; r < repeats; r++) { /* r = -1: an untimed warm-up sample */
        double total = 0.0;
        long k = 0;
        do {
            total += run_pass(ops, n);
            k++;
        } while (total < min_seconds);
        if (overflow) {
            fprintf(stderr, "%s: more than %llu orders live at once\n", argv[1],
                    (unsigned long long)capacity);
            return 1;
        }
        if (r >= 0) {
            rates[r] = total > 0 ? (double)n * (double)k / total : 0.0;
            passes[r] = k;
        }
    }
    double all_sorted[repeats];
    memcpy(all_sorted, rates, (size_t)repeats * sizeof(double));
    qsort(all_sorted, (size_t)repeats, sizeof(double), cmp_double);
    double median = repeats % 2 ? all_sorted[repeats / 2]
                                : 0.5 * (all_sorted[repeats / 2 - 1] + all_sorted[repeats / 2]);
    printf("{\"ops\": %llu, \"repeats\": %d, \"capacity\": %llu, \"ops_per_sec\": %.1f, "
           "\"all_ops_per_sec\": [",
           (unsigned long long)n, repeats, (unsigned long long)capacity, median);
    for (int r = 0; r < repeats; r++) printf("%s%.1f", r ? ", " : "", rates[r]);
    printf("], \"passes\": [");
    for (int r = 0; r < repeats; r++) printf("%s%ld", r ? ", " : "", passes[r]);
    printf("], \"live_orders\": %u, ", n_used - n_free);
    print_side("bids", &sides[0]);
    printf(", ");
    print_side("asks", &sides[1]);
    printf("}\n");
    return 0;
}
