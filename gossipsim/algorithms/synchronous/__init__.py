"""Synchronous methods: rounds that wait for every node (all-reduce SGD, local SGD)."""
