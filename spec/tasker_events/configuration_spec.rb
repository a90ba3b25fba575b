# frozen_string_literal: true

require "spec_helper"

RSpec.describe TaskerEvents::Configuration do
  it "fills in the documented defaults" do
    settings = described_class.new.settings
    expect(settings).to include(command_buffer_size: 1000, broadcast_buffer_size: 2000,
                                dispatch_timeout_ms: 5000, shutdown_drain_timeout_ms: 5000,
                                log_subscriber_errors: true, log_dropped_events: true)
  end

  it "names an unknown setting and lists the known ones" do
    expect { described_class.new(buffer: 1) }
      .to raise_error(TaskerEvents::ConfigError, /unknown setting :buffer; known settings:/)
  end

  it "names a value of the wrong kind" do
    expect { described_class.new(pool_size: 0) }
      .to raise_error(TaskerEvents::ConfigError,
                      /pool_size must be an Integer of at least 1, got 0/)
    expect { described_class.new(install_pgmq: "yes") }
      .to raise_error(TaskerEvents::ConfigError, /install_pgmq must be true or false/)
    expect { described_class.new(database_url: 5) }
      .to raise_error(TaskerEvents::ConfigError, /database_url must be a String/)
  end

  it "hands the native side string keys" do
    expect(described_class.new(pool_size: 3).to_native).to include("pool_size" => 3)
  end
end
