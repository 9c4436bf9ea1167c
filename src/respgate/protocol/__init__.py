"""Wire-level types: the create request, errors and ids. Depends on nothing internal."""
