# Rules of the pretrain stage (see README.md).
