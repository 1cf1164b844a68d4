"""Operations services: incidents and the detections that raise and clear them."""
