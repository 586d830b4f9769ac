"""The data: IDX and other sources → splits, image decoding and digit preprocessing, distortions, the download registry."""
