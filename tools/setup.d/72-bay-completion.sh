# `bayctl complete --shell zsh` is tested in a real zsh (tests/functional/test_bay_health.py).
APT_PACKAGES+=(zsh)
