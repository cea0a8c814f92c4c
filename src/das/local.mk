# src/das: DGA/DAS unit importance, soft-masking and the contrastive loss.
libdapt_a_SOURCES += src/das/importance.c src/das/softmask.c src/das/contrast.c src/das/proxy.c src/das/importance_pass.c \
	src/das/importance_io.c
