# tests/data: build fragment (included by Makefile.am)
