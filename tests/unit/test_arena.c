/* Unit tests for common/arena.h: alignment, distinct pointers for size 0, a reset that merges blocks so the same
 * load needs no malloc, the keep_max bound, a retaining arena's kept blocks, and protobuf-c decoding through the
 * allocator. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdalign.h>
#include <string.h>

#include "arena.h"
#include "filer.pb-c.h"

static void test_alignment_and_sizes(void **state)
{
  (void)state;
  fm_arena a;
  fm_arena_init(&a, 64, 0);
  void *prev = NULL;
  for (size_t size = 0; size < 300; size++) {
    unsigned char *p = fm_arena_alloc(&a, size);
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % alignof(max_align_t), 0);
    assert_ptr_not_equal(p, prev);
    memset(p, 0xab, size); /* ASan checks the bounds */
    prev = p;
  }
  assert_false(fm_arena_failed(&a));
  fm_arena_destroy(&a);
}

static void test_reset_merges_blocks(void **state)
{
  (void)state;
  fm_arena a;
  fm_arena_init(&a, 64, 0);
  for (int i = 0; i < 100; i++)
    assert_non_null(fm_arena_alloc(&a, 100));
  size_t first = fm_arena_mallocs(&a);
  assert_true(first > 1);
  fm_arena_reset(&a);
  for (int i = 0; i < 100; i++)
    assert_non_null(fm_arena_alloc(&a, 100));
  assert_int_equal(fm_arena_mallocs(&a), first + 1); /* one block for everything */
  for (int round = 0; round < 10; round++) {
    fm_arena_reset(&a);
    for (int i = 0; i < 100; i++)
      assert_non_null(fm_arena_alloc(&a, 100));
  }
  assert_int_equal(fm_arena_mallocs(&a), first + 1);
  fm_arena_destroy(&a);
}

static void test_keep_max(void **state)
{
  (void)state;
  fm_arena a;
  fm_arena_init(&a, 64, 1024);
  unsigned char *big = fm_arena_alloc(&a, 1 << 20);
  assert_non_null(big);
  memset(big, 1, 1 << 20);
  size_t m = fm_arena_mallocs(&a);
  fm_arena_reset(&a); /* the big block is released, not kept */
  assert_non_null(fm_arena_alloc(&a, 10));
  assert_int_equal(fm_arena_mallocs(&a), m + 1);
  fm_arena_reset(&a);
  assert_non_null(fm_arena_alloc(&a, 10));
  assert_int_equal(fm_arena_mallocs(&a), m + 1); /* the small one is kept */
  fm_arena_destroy(&a);
}

/* A retaining arena: blocks of one size, kept by a reset (up to keep_max bytes) and used again, so the same load
 * needs no malloc; a single allocation over the block size gets a block of its own. */
static void test_retaining(void **state)
{
  (void)state;
  fm_arena a;
  fm_arena_init_retaining(&a, 1024, 8 * 1024);
  for (int round = 0; round < 5; round++) {
    for (int i = 0; i < 40; i++) { /* 40 * 112 bytes: 5 blocks */
      unsigned char *p = fm_arena_alloc(&a, 100);
      assert_non_null(p);
      memset(p, round, 100);
    }
    assert_int_equal(fm_arena_mallocs(&a), 5);
    fm_arena_reset(&a);
  }
  unsigned char *big = fm_arena_alloc(&a, 4000);
  assert_non_null(big);
  memset(big, 2, 4000);
  assert_int_equal(fm_arena_mallocs(&a), 6);
  fm_arena_reset(&a);          /* the 5 kept blocks count first: the big one would pass keep_max and is freed */
  for (int i = 0; i < 80; i++) /* 9 blocks: the 5 kept, 4 new */
    assert_non_null(fm_arena_alloc(&a, 100));
  assert_int_equal(fm_arena_mallocs(&a), 6 + 4);
  fm_arena_reset(&a); /* keeps 8 of the 9 (keep_max) */
  for (int i = 0; i < 80; i++)
    assert_non_null(fm_arena_alloc(&a, 100));
  assert_int_equal(fm_arena_mallocs(&a), 6 + 4 + 1);
  assert_false(fm_arena_failed(&a));
  fm_arena_destroy(&a);
}

/* Blocks of a huge page: written in full, kept and used again by the next cycle. */
static void test_retaining_huge_blocks(void **state)
{
  (void)state;
  fm_arena a;
  fm_arena_init_retaining(&a, ((size_t)2 << 20) - 64, (size_t)8 << 20);
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < 50; i++) { /* 50 * 100 KB: 3 blocks of ~2 MiB */
      unsigned char *p = fm_arena_alloc(&a, 100 << 10);
      assert_non_null(p);
      memset(p, round + 1, 100 << 10);
    }
    assert_int_equal(fm_arena_mallocs(&a), 3);
    fm_arena_reset(&a);
  }
  unsigned char *big = fm_arena_alloc(&a, (size_t)5 << 20); /* over the block size: a block of its own */
  assert_non_null(big);
  memset(big, 9, (size_t)5 << 20);
  assert_int_equal(fm_arena_mallocs(&a), 4);
  fm_arena_destroy(&a);
  /* a block of 1 MiB is rounded up to a huge page: 2 MiB of allocations fit in its first one */
  fm_arena_init_retaining(&a, (size_t)1 << 20, (size_t)8 << 20);
  for (int i = 0; i < 19; i++) {
    unsigned char *p = fm_arena_alloc(&a, 100 << 10);
    assert_non_null(p);
    memset(p, 7, 100 << 10);
  }
  assert_int_equal(fm_arena_mallocs(&a), 1);
  fm_arena_destroy(&a);
}

static void test_overflow(void **state)
{
  (void)state;
  fm_arena a;
  fm_arena_init(&a, 0, 0);
  assert_null(fm_arena_alloc(&a, SIZE_MAX));
  assert_true(fm_arena_failed(&a));
  fm_arena_reset(&a);
  assert_false(fm_arena_failed(&a));
  assert_non_null(fm_arena_alloc(&a, 1));
  fm_arena_destroy(&a);
}

static void test_protobuf_allocator(void **state)
{
  (void)state;
  FilerPb__Entry e = FILER_PB__ENTRY__INIT;
  FilerPb__FileChunk c1 = FILER_PB__FILE_CHUNK__INIT, c2 = FILER_PB__FILE_CHUNK__INIT;
  FilerPb__FileChunk *chunks[] = { &c1, &c2 };
  e.name = (char *)"name";
  c1.file_id = (char *)"1,abc";
  c2.file_id = (char *)"2,def";
  e.n_chunks = 2;
  e.chunks = chunks;
  uint8_t buf[256];
  size_t len = filer_pb__entry__pack(&e, buf);
  fm_arena a;
  fm_arena_init(&a, 0, 0);
  ProtobufCAllocator alloc = fm_arena_allocator(&a);
  for (int i = 0; i < 10; i++) {
    fm_arena_reset(&a);
    FilerPb__Entry *d = filer_pb__entry__unpack(&alloc, len, buf);
    assert_non_null(d);
    assert_string_equal(d->name, "name");
    assert_int_equal(d->n_chunks, 2);
    assert_string_equal(d->chunks[1]->file_id, "2,def");
    filer_pb__entry__free_unpacked(d, &alloc); /* allowed, and does nothing */
  }
  assert_int_equal(fm_arena_mallocs(&a), 1);
  fm_arena_destroy(&a);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_alignment_and_sizes),
    cmocka_unit_test(test_reset_merges_blocks),
    cmocka_unit_test(test_keep_max),
    cmocka_unit_test(test_retaining),
    cmocka_unit_test(test_retaining_huge_blocks),
    cmocka_unit_test(test_overflow),
    cmocka_unit_test(test_protobuf_allocator),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
