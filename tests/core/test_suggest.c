/* "Did you mean": the edit distance and when a candidate is close enough. */
#include "harness.h"

#include <stdint.h>
#include <string.h>

#include "dapt/suggest.h"

static void test_distance(void)
{
    CU_ASSERT_EQUAL(dapt_edit_distance("steps", "steps"), 0);
    CU_ASSERT_EQUAL(dapt_edit_distance("stps", "steps"), 1);     /* deletion */
    CU_ASSERT_EQUAL(dapt_edit_distance("stepss", "steps"), 1);   /* insertion */
    CU_ASSERT_EQUAL(dapt_edit_distance("stels", "steps"), 1);    /* substitution */
    CU_ASSERT_EQUAL(dapt_edit_distance("stesp", "steps"), 1);    /* swap of neighbours */
    CU_ASSERT_EQUAL(dapt_edit_distance("", "abc"), 3);
    CU_ASSERT_EQUAL(dapt_edit_distance("kitten", "sitting"), 3);
    char long_name[DAPT_SUGGEST_MAX + 1];
    memset(long_name, 'a', DAPT_SUGGEST_MAX);
    long_name[DAPT_SUGGEST_MAX] = '\0';
    CU_ASSERT_EQUAL(dapt_edit_distance(long_name, "a"), SIZE_MAX);
}

static void test_closest_wins(void)
{
    dapt_suggestion s;
    dapt_suggest_start(&s, "trian");
    const char *names[] = {"run", "data", "train", "task", "rain"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) dapt_suggest_offer(&s, names[i]);
    CU_ASSERT_STRING_EQUAL(dapt_suggest_result(&s), "train"); /* 1 swap; "rain" is 2 */
}

static void test_far_or_exact_is_none(void)
{
    dapt_suggestion s;
    dapt_suggest_start(&s, "bogus");
    dapt_suggest_offer(&s, "train");
    dapt_suggest_offer(&s, "model");
    CU_ASSERT_PTR_NULL(dapt_suggest_result(&s));
    dapt_suggest_start(&s, "rum"); /* short words: one edit at most */
    dapt_suggest_offer(&s, "run");
    CU_ASSERT_STRING_EQUAL(dapt_suggest_result(&s), "run");
    dapt_suggest_start(&s, "rum");
    dapt_suggest_offer(&s, "rng");
    CU_ASSERT_PTR_NULL(dapt_suggest_result(&s));
    dapt_suggest_offer(&s, "rum");
    CU_ASSERT_PTR_NULL(dapt_suggest_result(&s)); /* the word itself is no typo */
    dapt_suggest_start(&s, "ab");
    dapt_suggest_offer(&s, "xy");
    CU_ASSERT_PTR_NULL(dapt_suggest_result(&s));
}

DAPT_TEST_MAIN("suggest", {"edit distance", test_distance}, {"the closest candidate wins", test_closest_wins},
               {"far candidates and the word itself are not suggested", test_far_or_exact_is_none})
