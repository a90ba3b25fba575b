# frozen_string_literal: true

# A payments worker in miniature; the scenario itself is TaskerEvents::Demo, which
# `tasker-events demo` runs too. Run it with bin/demo, or with DATABASE_URL set:
#   ruby -Ilib examples/demo.rb

require "tasker_events/demo"

database_url = ENV.fetch("DATABASE_URL") { abort "DATABASE_URL is not set (bin/demo sets it)" }
TaskerEvents::Demo.new(database_url:).run
