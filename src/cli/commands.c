/* The command table: one line per command, in the order `dapt help` lists. */
#include "dapt/cli.h"

#include <stddef.h>

const dapt_command dapt_commands[] = {
    {"version", "print versions of dapt and its libraries, and thread counts", dapt_cmd_version},
    {"config", "show or check the resolved run configuration", dapt_cmd_config},
    {"tokenize", "print the token ids of UTF-8 lines read on stdin", dapt_cmd_tokenize},
    {"prepare", "tokenize raw text or labelled examples into an HDF5 file (all ranks)", dapt_cmd_prepare},
    {"train", "post-train a model (mlm, one, kd, ewc, dga, das) with checkpoints and preemption", dapt_cmd_train},
    {"finetune", "fine-tune a classification or regression head (cls, smart), best dev epoch kept", dapt_cmd_finetune},
    {"eval", "evaluate a classifier on a task split, or held-out MLM loss on a corpus", dapt_cmd_eval},
    {"importance", "unit importance (heads, FFN neurons) of a model over a corpus, as DGA/DAS compute it", dapt_cmd_importance},
    {"analyze", "spectra, CKA and weight changes of HDF5 outputs, distributed on ScaLAPACK", dapt_cmd_analyze},
    {"import", "convert a Hugging Face model directory to a dapt model file", dapt_cmd_import},
    {"export", "write a dapt model file as a Hugging Face model directory", dapt_cmd_export},
    {"inspect", "what an output file is and how it was made, or how far a run directory got", dapt_cmd_inspect},
    {"forward", "run a model on a batch from an HDF5 file and write every intermediate", dapt_cmd_forward},
    {"infer", "top-k tokens for [MASK] in a sentence, or class probabilities", dapt_cmd_infer},
    {NULL, NULL, NULL},
};
