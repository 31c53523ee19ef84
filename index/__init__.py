"""The corpus and its index: articles and their text (articles, text, split), articles from the
web (web/), and the index kept on disk and searched (build, storage, manifest, embed, dense,
lexical, search)."""
