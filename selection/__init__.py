"""SFT data selection: GRAPE and BIDS selectors behind one small interface."""
