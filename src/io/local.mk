# src/io: build fragment (included by Makefile.am)
