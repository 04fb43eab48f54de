fn main(){ println!("{}", option_env!("VERGEN_GIT_SHA").unwrap_or("unknown")); }
