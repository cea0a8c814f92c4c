# tests/analysis
