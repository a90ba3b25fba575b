# frozen_string_literal: true

module TaskerEvents
  VERSION = "0.1.0"
end
