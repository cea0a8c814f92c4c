# tests/train: build fragment (included by Makefile.am)
