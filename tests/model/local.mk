# tests/model: build fragment (included by Makefile.am)
