"""Detection / instance-segmentation transfer (Tab. 3) through detectron2; see detectron2_backend."""
