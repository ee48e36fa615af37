"""Weight circuits (Framework paper): weight processing, QK/OV circuits, eigenvalue scores, composition scores, skip-trigrams."""
