"""What several test modules share: fakes, fixtures' building blocks and the public API's list. Test modules import from here, never from one another."""
