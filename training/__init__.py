"""TRL-based trainers (GRPO with the execution reward, SFT on selected data)."""
