"""Answer quality on SQuAD-format files: `articlebot eval`."""
