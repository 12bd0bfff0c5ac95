"""Segment backends: one small runner class per engine, chosen by the segment's ``backend`` field."""
