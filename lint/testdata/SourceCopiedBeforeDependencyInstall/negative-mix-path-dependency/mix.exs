defmodule App.MixProject do
  use Mix.Project
  def project, do: [app: :app, version: "0.1.0", deps: deps()]
  defp deps, do: [{:jason, "~> 1.4"}, {:forum, path: "./forum"}]
end
