defmodule Forum do
end
