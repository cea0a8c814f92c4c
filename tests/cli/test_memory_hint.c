/* The hint after an allocation failure: the keys for the command that
 * failed, values derived from the configuration, and no hint where the keys
 * would not help. */
#include "harness.h"

#include <string.h>

#include "dapt/cli.h"

static dapt_cli cli_for(const char *command)
{
    dapt_cli cli;
    memset(&cli, 0, sizeof cli);
    dapt_config_defaults(&cli.cfg);
    cli.command = command;
    cli.size = 2;
    return cli;
}

static void test_train(void)
{
    dapt_cli cli = cli_for("train");
    CU_ASSERT_EQUAL_FATAL(dapt_config_set(&cli.cfg, "train.batch_size=64"), DAPT_OK);
    CU_ASSERT_EQUAL_FATAL(dapt_config_set(&cli.cfg, "train.grad_accum=2"), DAPT_OK);
    char hint[512];
    dapt_cli_memory_hint(&cli, DAPT_ERR_NOMEM, (size_t)3 << 30, hint, sizeof hint);
    CU_ASSERT_PTR_NOT_NULL(strstr(hint, "train.grad_accum = 4 (micro-batches of 16 of the 64 sequences)"));
    CU_ASSERT_PTR_NOT_NULL(strstr(hint, "model.recompute = true"));
    CU_ASSERT_PTR_NOT_NULL(strstr(hint, "a smaller train.batch_size"));
    CU_ASSERT_PTR_NOT_NULL(strstr(hint, "parallel.tensor = 2"));
    /* Already recomputing: not suggested again. */
    CU_ASSERT_EQUAL_FATAL(dapt_config_set(&cli.cfg, "model.recompute=true"), DAPT_OK);
    dapt_cli_memory_hint(&cli, DAPT_ERR_NOMEM, (size_t)3 << 30, hint, sizeof hint);
    CU_ASSERT_PTR_NULL(strstr(hint, "recompute"));
}

static void test_finetune(void)
{
    dapt_cli cli = cli_for("finetune");
    CU_ASSERT_EQUAL_FATAL(dapt_config_set(&cli.cfg, "finetune.batch_size=32"), DAPT_OK);
    char hint[512];
    dapt_cli_memory_hint(&cli, DAPT_ERR_NOMEM, (size_t)1 << 20, hint, sizeof hint);
    /* micro_batch 0: the rank's share, 32 / 2 ranks. */
    CU_ASSERT_PTR_NOT_NULL(strstr(hint, "finetune.micro_batch = 8 (examples per forward on a rank, now 16)"));
    CU_ASSERT_PTR_NULL(strstr(hint, "train."));
    CU_ASSERT_EQUAL_FATAL(dapt_config_set(&cli.cfg, "finetune.micro_batch=1"), DAPT_OK);
    dapt_cli_memory_hint(&cli, DAPT_ERR_NOMEM, (size_t)1 << 20, hint, sizeof hint);
    CU_ASSERT_PTR_NOT_NULL(strstr(hint, "finetune.micro_batch = 1 (examples per forward on a rank, now 1)"));
}

static void test_no_hint(void)
{
    char hint[512] = "x";
    dapt_cli cli = cli_for("train");
    dapt_cli_memory_hint(&cli, DAPT_ERR_IO, (size_t)1 << 30, hint, sizeof hint);
    CU_ASSERT_STRING_EQUAL(hint, "");
    dapt_cli_memory_hint(&cli, DAPT_ERR_NOMEM, ((size_t)1 << 20) - 1, hint, sizeof hint);
    CU_ASSERT_STRING_EQUAL(hint, "");
    cli = cli_for("prepare");
    dapt_cli_memory_hint(&cli, DAPT_ERR_NOMEM, (size_t)1 << 30, hint, sizeof hint);
    CU_ASSERT_STRING_EQUAL(hint, "");
}

DAPT_TEST_MAIN("memory_hint", {"train: accumulation, recomputation, batch, tensor ranks", test_train},
               {"finetune: micro-batch from the rank's share", test_finetune},
               {"no hint for other failures, small sizes, other commands", test_no_hint})
