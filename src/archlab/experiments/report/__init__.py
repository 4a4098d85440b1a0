"""What a person reads: the HTML/Markdown report (html), its figures (figures) and the README/docs claim tables
(claims_table)."""
