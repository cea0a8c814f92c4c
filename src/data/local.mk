# src/data: build fragment (included by Makefile.am)
