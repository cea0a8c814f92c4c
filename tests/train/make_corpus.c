/* make_corpus DIR N_DOCS: writes DIR/vocab.txt and DIR/corpus.h5 (the
 * synthetic fixture of corpus_fixture.h) for the shell tests. */
#include <stdio.h>
#include <stdlib.h>

#include "corpus_fixture.h"

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: make_corpus DIR N_DOCS\n");
        return 2;
    }
    MPI_Init(NULL, NULL);
    char vocab[4096], corpus[4096];
    snprintf(vocab, sizeof vocab, "%s/vocab.txt", argv[1]);
    snprintf(corpus, sizeof corpus, "%s/corpus.h5", argv[1]);
    int rc = 0;
    if (fixture_write_vocab(vocab) != 0) {
        fprintf(stderr, "make_corpus: cannot write %s\n", vocab);
        rc = 1;
    } else if (fixture_write_corpus(MPI_COMM_WORLD, corpus, atoll(argv[2]), 7) != DAPT_OK) {
        fprintf(stderr, "make_corpus: %s\n", dapt_error_message());
        rc = 1;
    }
    MPI_Finalize();
    return rc;
}
