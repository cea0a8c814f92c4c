# src/text: build fragment (included by Makefile.am)
