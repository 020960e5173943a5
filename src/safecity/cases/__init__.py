"""Cases (police side) and the public 阳光警务 portal: lookup by number + code, comments."""
