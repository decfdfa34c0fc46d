"""GRAPE: per instruction, keep the candidate response(s) the target model finds most likely.

Zhang, Dai & Peng, "The Best Instruction-Tuning Data are Those That Fit"
(arXiv 2502.04194, NeurIPS 2025). Score = mean log-prob of the response tokens
given the prompt under the base model that will be fine-tuned. See docs/grape.md.
"""
