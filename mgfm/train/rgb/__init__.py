"""MG-FM-RGB training pieces (SMILE): Stage 1 synthetic motion and object banks, masks, per-epoch views, the
CLIP teacher fetch, fine-tuning augmentation and views, and the packed RGB clip Dataset."""
