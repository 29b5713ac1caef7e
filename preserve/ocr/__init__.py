"""OCR groundwork: scanned-looking Vietnamese pages with known text, so OCR options can be chosen from numbers."""
