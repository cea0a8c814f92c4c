# tests/text: build fragment (included by Makefile.am)
