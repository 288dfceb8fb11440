"""Benchmark suites (``vitalstream bench SUITE``): each measures one thing on the real
services or in memory and writes JSON; ``report`` turns them into docs/benchmarks.md."""
