defmodule Forum.MixProject do
  use Mix.Project
  def project, do: [app: :forum, version: "0.1.0", deps: [{:plug, "~> 1.15"}]]
end
