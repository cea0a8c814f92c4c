/* Bodies of the shared test helpers declared in tests/harness.h (built into
 * tests/libdapt_test.a, which TEST_LIBS links into every test program). */
#include "harness.h"

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int dapt_test_world_rank(void)
{
    int r;
    MPI_Comm_rank(MPI_COMM_WORLD, &r);
    return r;
}

int dapt_test_world_size(void)
{
    int s;
    MPI_Comm_size(MPI_COMM_WORLD, &s);
    return s;
}

const char *dapt_test_tmpfile(const char *tag, const char *name)
{
    static char buf[8][512];
    static int next;
    char *b = buf[next++ % 8];
    snprintf(b, sizeof buf[0], "%s/dapt_test_%s_%ld_%s", dapt_test_tmpdir(), tag, (long)getpid(), name);
    return b;
}

static char shared_dir[512];

const char *dapt_test_shared_dir(const char *tag)
{
    if (!shared_dir[0]) {
        long pid = (long)getpid();
        MPI_Bcast(&pid, 1, MPI_LONG, 0, MPI_COMM_WORLD);
        snprintf(shared_dir, sizeof shared_dir, "%s/dapt-test-%s-%ld", dapt_test_tmpdir(), tag, pid);
        if (dapt_test_world_rank() == 0) mkdir(shared_dir, 0700);
        MPI_Barrier(MPI_COMM_WORLD);
    }
    return shared_dir;
}

const char *dapt_test_shared_path(const char *name)
{
    static char buf[8][1024];
    static int next;
    char *b = buf[next++ % 8];
    snprintf(b, sizeof buf[0], "%s/%s", shared_dir, name);
    return b;
}

int dapt_test_remove_tree(const char *path)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    return system(cmd);
}

dapt_model_config dapt_test_model_config(dapt_arch arch, int64_t vocab_size, int64_t hidden, int64_t layers,
                                         int64_t heads, int64_t intermediate, int64_t max_position)
{
    dapt_model_config mc;
    memset(&mc, 0, sizeof mc);
    mc.arch = arch;
    mc.vocab_size = vocab_size;
    mc.hidden = hidden;
    mc.layers = layers;
    mc.heads = heads;
    mc.intermediate = intermediate;
    mc.max_position = max_position;
    mc.type_vocab_size = arch == DAPT_ARCH_ROBERTA ? 1 : 2;
    mc.pad_token_id = arch == DAPT_ARCH_ROBERTA ? 1 : 0;
    mc.layer_norm_eps = arch == DAPT_ARCH_ROBERTA ? 1e-5 : 1e-12;
    mc.has_pooler = 1;
    mc.has_mlm_head = 1;
    return mc;
}
