# src/objectives: the training objectives behind dapt/objective.h, one file
# per method, the registry that lists them, and the passes over a corpus
# outside the training order (importance, Fisher, representations).
libdapt_a_SOURCES += src/objectives/objective.c src/objectives/registry.c src/objectives/objectives.h \
	src/objectives/mlm.c src/objectives/kd.c src/objectives/ewc.c src/objectives/das.c \
	src/objectives/das_domains.c src/objectives/das_state.h src/objectives/cls.c \
	src/objectives/smart.c src/objectives/smart.h \
	src/objectives/token_detection.c src/objectives/token_detection.h src/objectives/token_corrupt.c \
	src/objectives/token_head.c src/objectives/cse.c src/objectives/cse.h \
	src/objectives/sampler.c src/objectives/sampler.h src/objectives/sampler_policy.c \
	src/objectives/objective_heldout.c src/objectives/objective_heldout.h \
	src/objectives/corpus_pass.c src/objectives/emlm.c
