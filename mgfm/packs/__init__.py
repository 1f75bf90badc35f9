"""The packed skeleton and RGB clip datasets (pretrain, mg_train, mg_test, video_clips) built from the clips stage."""
