module GemfileHelper; end
