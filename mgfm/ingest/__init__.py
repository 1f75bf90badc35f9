"""Dataset contract, download and normalisation, video reading, and the embedded demo corpus."""
