package builder

// StargzSupported is stargzSupported, for the external tests.
var StargzSupported = stargzSupported
