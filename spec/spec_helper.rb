# frozen_string_literal: true

$LOAD_PATH.unshift(File.expand_path("../lib", __dir__))
require "tasker_events"
require "tasker_events/rspec"
require "securerandom"

Dir[File.join(__dir__, "support/**/*.rb")].each { |file| require file }

RSpec.configure do |config|
  config.expect_with(:rspec) { |c| c.syntax = :expect }
  config.disable_monkey_patching!
  config.order = :random
  config.example_status_persistence_file_path = "tmp/rspec-status.txt"

  config.after do
    TaskerEvents.shutdown
    TaskerEvents::SubscriberRegistry.instance.reset!
  end
end
