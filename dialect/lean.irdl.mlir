irdl.dialect @lean {}
