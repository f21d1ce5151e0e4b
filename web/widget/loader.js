/* Parley chat widget loader: not built yet (issue 5). Does nothing. */
