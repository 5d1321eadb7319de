"""Video decoding (video), head crops (crops) and JPEG coding (jpeg); video_writer encodes."""
