"""livemodel: keep machine-learning models healthy after training."""
